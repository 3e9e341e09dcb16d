"""Self-supervised training on top of mi_augment: the small shared pieces the recipes in ``recipes/`` use.

* :mod:`.data`       datasets as uint8 image tensors (resident on the device when small) or DataLoaders
* :mod:`.backbones`  ResNet-18 with a small-image stem, ViT-Tiny with a patch size suited to the image size
* :mod:`.heads`      projection / prediction MLPs, momentum copies, support-queue neighbours
* :mod:`.losses`     NT-Xent, InfoNCE, NNCLR, BYOL, SimSiam, Barlow Twins, VICReg
* :mod:`.augment`    the ``--augment baseline|natural|mi|twin`` view factories, batched on the device
* :mod:`.train`      the training loop (AMP, cosine schedule, atomic checkpoints, resume, DDP, results.json)
* :mod:`.evaluate`   kNN top-1 and linear probe on frozen features
* :mod:`.demo`       the short baseline-vs-mi comparison that ``mi-augment demo`` ends with

Modules are imported on use, so ``import mi_augment.ssl`` stays cheap.
"""

AUGMENT_MODES = ("baseline", "natural", "mi", "twin")
#: what the method's loss pulls together (``--positives``)
POSITIVES = ("views", "mi-neighbour", "twin")
BACKBONES = ("resnet18", "vit_tiny", "small_cnn")
