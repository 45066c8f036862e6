"""`clipgate bench quality`: a dev corpus of real media, transformed query clips, metrics and baselines."""
