"""A reusable check for any registered model, in the spirit of AllenNLP's `ModelTestCase`.

`check_train_save_load_predict(config, directory)` trains the model a config describes (on
fixtures), loads the archive it wrote, and checks what every model must guarantee:

- the archive rebuilds the same model: identical outputs to the trained model, and to a second
  load of the archive;
- predicting sentence by sentence gives the same predictions as predicting in batches;
- every prediction covers its sentence's words.

It returns the loaded archive for model-specific checks.
"""

import copy
from pathlib import Path

import torch
from tango.common import Params

from structkd_plugin.archival import Archive, load_archive
from structkd_plugin.models.predictions import predictions
from structkd_plugin.config import import_structkd_registrations
from structkd_plugin.training.train import train_model


def check_train_save_load_predict(config: dict, directory: Path, sentences: int = 12) -> Archive:
    import_structkd_registrations()
    data_path = config.get("validation_data_path") or config["train_data_path"]
    trained = train_model(Params(copy.deepcopy(config)), directory)  # Params consumes its dict
    archive = load_archive(directory / "model.tar.gz")
    again = load_archive(directory / "model.tar.gz")
    instances = list(archive.validation_dataset_reader.read(data_path))[:sentences]

    trained.eval()
    outputs = []
    for model in (trained, archive.model, again.model):
        with torch.no_grad():
            outputs.append(model(**model.tensorize(instances)))
    for key, value in outputs[0].items():
        if isinstance(value, torch.Tensor) and key != "loss":
            assert torch.equal(value, outputs[1][key]), f"the archived model's {key} differs from the trained model's"
            assert torch.equal(outputs[1][key], outputs[2][key]), f"two loads of the archive differ in {key}"

    batched = list(predictions(archive.model, instances, batch_size=5))
    single = [next(iter(predictions(archive.model, [instance], batch_size=1))) for instance in instances]
    assert batched == single, "batched and one-by-one predictions differ"
    assert [p["words"] for p in batched] == [i["words"] for i in instances]
    return archive
