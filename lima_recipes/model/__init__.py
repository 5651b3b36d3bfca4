"""Model build and load, residual dropout, the LightningModule and export."""
