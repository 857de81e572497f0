"""Packaging: the ``wwm`` command, and what Dataflow workers install with ``--setup_file``."""
import setuptools

setuptools.setup(
    name="wwm-data",
    version="0.1.0",
    description="Whole-word-masked pretraining data for Chinese BERT (BERT-wwm, RoBERTa-wwm-ext) on Apache Beam",
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["wwm_core", "wwm_core.*", "pipelines", "pipelines.*", "wwm_trainer", "wwm_trainer.*",
                                             "wwm_cli", "wwm_cli.*", "wwm_torch", "wwm_torch.*"]),
    package_data={"wwm_core": ["data/*.txt", "data/NOTICE", "data/sample/*"]},
    install_requires=[
        # The tested Beam: pipelines/local_workers.py (multi_processing runs only) uses its runner's
        # worker-handler registry, and falls back to Beam's own workers where that moved.
        "apache-beam[gcp]>=2.77,<2.78",
        "datasketch>=1.6",
        "defusedxml>=0.7",
        "google-cloud-storage>=3",
        "google-crc32c>=1.5",
        "huggingface_hub>=0.25",
        "jieba>=0.42",
        "ltp-extension>=0.1.13",
        "mwparserfromhell>=0.6",
        "numba>=0.61",  # the compiled row loops of wwm_core/kernels.py
        "numpy>=1.26",
        "opencc>=1.1.9",
        "pyarrow>=14",
        "rich>=13",  # progress bars of local runs
        "tokenizers>=0.20",
    ],
    extras_require={
        "tf": ["tensorflow-cpu>=2.16", "keras>=3.0", "safetensors>=0.4", "h5py>=3.10"],
        # wwm_torch: PyTorch datasets and the whole-word-mask collator; transformers and accelerate
        # for its Trainer. Any torch build (CPU or CUDA) the user's platform installs.
        "torch": ["torch>=2.6", "transformers>=4.46", "accelerate>=1.1"],
        # LTP's neural models (torch); the legacy perceptron needs only ltp-extension.
        "ltp-neural": ["ltp>=4.2"],
        # `wwm report` and `wwm run --report`: the plots.
        "report": ["matplotlib>=3.8"],
        "test": ["pytest>=8", "pytest-xdist>=3.6", "hypothesis>=6", "gcp-storage-emulator>=2024.8", "tensorflow-cpu>=2.16", "safetensors>=0.4",
                 "datasets>=3", "scipy>=1.10", "seqeval>=1.2.2", "matplotlib>=3.8", "pillow>=10", "dockerfile>=3.4",
                 # wwm_torch's tests (requirements.lock pins the CPU build of torch)
                 "torch>=2.6", "transformers>=4.46", "accelerate>=1.1"],
    },
    entry_points={"console_scripts": ["wwm=wwm_cli:program"]},
)
