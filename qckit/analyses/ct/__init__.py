"""CT phantom analyses (CatPhan image quality)."""
