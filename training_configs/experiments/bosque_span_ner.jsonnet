// Issue 15's teacher: the `span_ner` model (biaffine span scores over a words + characters BiLSTM
// of the BiLSTM-CRF teacher's size, exact semi-Markov likelihood) on UniversalNER
// Portuguese-Bosque, three seeds, until dev F1 has not risen for 5 epochs.
//   structkd experiment training_configs/experiments/bosque_span_ner.jsonnet -s runs/span-ner --jobs 2
local corpus = "../../../shared/data/UNER_Portuguese-Bosque/pt_bosque-ud-";
{
  base: "../ner/span_ner.jsonnet",
  env: { TRAIN_PATH: corpus + "train.iob2", DEV_PATH: corpus + "dev.iob2", TEST_PATH: corpus + "test.iob2" },
  axes: { seed: [1, 2, 3] },
  threads: 1,
  metrics: ["test_f1-measure-overall", "best_validation_f1-measure-overall"],
}
