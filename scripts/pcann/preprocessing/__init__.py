"""From images to network inputs: the train/validation split, z-scoring and PCA under each
protocol (``features``), and the streaming solver for folders too large for memory
(``streaming``). Read by the split, standardise and fit_pca rules and by the model files."""
