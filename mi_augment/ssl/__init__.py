"""Self-supervised training on top of mi_augment: the small shared pieces the recipes in ``recipes/`` use.

* :mod:`.backbones`  ResNet-18 with a small-image stem, ViT-Tiny with a patch size suited to the image size
* :mod:`.heads`      projection / prediction MLPs, momentum copies, support-queue neighbours
* :mod:`.losses`     NT-Xent, InfoNCE, NNCLR, BYOL, SimSiam, Barlow Twins, VICReg
* :mod:`.optim`      LARS, parameter groups, warmup + cosine schedule
* :mod:`.views`      the ``--augment baseline|natural|mi`` view pairs, batched on the device, each built from
                     the method's one definition in :mod:`mi_augment.transforms.presets`
* :mod:`.twins`      ``--positives twin``: (patch, twin) pairs mined from video and the branch that trains on them
* :mod:`.positives`  cross-image partners chosen by pointwise MI from a support queue (``--positives mi-neighbour``)
* :mod:`.features`   an encoder's feature maps for in-step pair scoring
* :mod:`.train`      the run: ``cli`` (flags, checked up front), ``folder`` (no overwritten runs, a lock),
                     ``checkpoint`` (atomic, validated, resumable), ``loop`` (AMP, DDP, results.json)
* :mod:`.evaluate`   kNN top-1, linear probe on frozen features
* :mod:`.demo`       the short baseline-vs-mi comparison that ``mi-augment demo`` ends with

Datasets live in :mod:`mi_augment.datasets` (``loading``: uint8 tensors resident on the device when small,
or DataLoaders), which never imports this package.

Modules are imported on use, so ``import mi_augment.ssl`` stays cheap.
"""

AUGMENT_MODES = ("baseline", "natural", "mi", "twin")
#: what the method's loss pulls together (``--positives``)
POSITIVES = ("views", "mi-neighbour", "twin")
BACKBONES = ("resnet18", "vit_tiny", "small_cnn")
