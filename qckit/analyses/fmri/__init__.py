"""fMRI quality control: EPI temporal stability of a phantom time series (`stability`), and its analysis in the
QC engine (`analysis`)."""
