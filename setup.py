"""Adds the card templates in cards/ to the wheel as the package ``diverseg_hf._cards``."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["diverseg_hf*"]), "diverseg_hf._cards"],
    package_dir={"diverseg_hf._cards": "cards"},
    package_data={"diverseg_hf._cards": ["*.j2"]},
)
