// Several teachers, one student: a BiLSTM-CRF teacher per language (UniversalNER Portuguese-Bosque,
// Danish-DDT, Croatian-SET), distilled with structural KD into one multilingual `crf_chars`
// student, against the same student trained on the three gold sets (`none`); three seeds, every
// run until dev F1 has not risen for 5 epochs; F1 on each language's test set.
//   structkd experiment training_configs/experiments/multilingual.jsonnet -s runs/multilingual --jobs 2
local data = "../../../shared/data/";
local corpora = { pt: "UNER_Portuguese-Bosque/pt_bosque-ud-", da: "UNER_Danish-DDT/da_ddt-ud-", hr: "UNER_Croatian-SET/hr_set-ud-" };
local file(language, split) = data + corpora[language] + split + ".iob2";
local files(split) = { [language]: file(language, split) for language in std.objectFields(corpora) };
local teacher(language) = {
  config: "../ner/bilstm_crf.jsonnet",
  env: { TRAIN_PATH: file(language, "train"), DEV_PATH: file(language, "dev"), TEST_PATH: file(language, "test") },
};
{
  base: "../distill/multilingual.jsonnet",
  env: { TRAIN_PATH: files("train"), DEV_PATH: files("dev"), TEST_PATH: files("test"), STUDENT: "crf_chars" },
  teacher: { [language]: teacher(language) for language in std.objectFields(corpora) },
  axes: {
    objective: [{ type: "none" }, { type: "structural" }],
    seed: [1, 2, 3],
  },
  evaluate: { [language]: { [language]: file(language, "test") } for language in std.objectFields(corpora) },
  threads: 1,
  metrics: ["pt_f1-measure-overall", "da_f1-measure-overall", "hr_f1-measure-overall", "test_f1-measure-overall"],
}
