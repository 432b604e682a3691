"""The paper's JPEG numbers: per-image blockiness (NumPy kernel, torch batch path), the dataset
quality estimate, its DF2K basis, calibration on any corpus, the sample corpus and the figures."""
