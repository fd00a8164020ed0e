"""The data: image folders read into arrays (``images``: listing, decoding, the split folders'
checks) and the embedded demo data set (``demo``). Read by the loading and demo rules, the
planning (image counts and fingerprint) and the model files (decoding new images as training did)."""
