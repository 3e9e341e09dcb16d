"""MI-chosen pairs made on the device in a Lightning module's ``on_after_batch_transfer`` hook.

The DataLoader ships uint8 images; the hook turns each batch into two views on the GPU (or CPU) before the
training step, so the workers only decode. Needs ``pytorch_lightning`` (``pip install lightly`` brings it).
"""

import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from mi_augment.ssl.losses import nt_xent
from mi_augment.transforms import MIPairTransform


class SimCLR(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(16, 16)
        self.pair = MIPairTransform.simclr(24)  # MI-chosen crops + SimCLR's per-view colour pipeline

    def on_after_batch_transfer(self, batch, dataloader_idx):
        (images,) = batch
        if self.trainer.training:
            return self.pair(images.float() / 255)  # (view_a, view_b), batched on the device
        return batch

    def training_step(self, views, batch_idx):
        z_a, z_b = (self.head(self.encoder(v)) for v in views)
        loss = nt_xent(z_a, z_b)
        self.log("loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-3)


if __name__ == "__main__":
    data = TensorDataset(torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8))
    trainer = pl.Trainer(max_steps=3, accelerator="auto", devices=1, logger=False, enable_checkpointing=False,
                         enable_model_summary=False, enable_progress_bar=False)
    trainer.fit(SimCLR(), DataLoader(data, batch_size=16))
    print("trained", trainer.global_step, "steps")
