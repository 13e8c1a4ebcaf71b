"""Foundation models as consumers of decoded frames and latents (TerraFM, TESSERA).

Their published weights live on hubs these machines cannot reach, so every encoder here loads a
user's checkpoint file (`checkpoint`) and is verified against the public code with random
weights (tests/fixtures/make_terrafm_fixtures.py and make_tessera_fixtures.py, run in their own
virtual environment; docs/CONSUMERS.md).

| module | job |
|---|---|
| `checkpoint` | reading a user's checkpoint (safetensors, or `.pt` without unpickling objects) |
| `terrafm` | TerraFM-B / TerraFM-L: ViT-B/16 or ViT-L/16 with per-modality patch embeddings |
| `tessera` | TESSERA v1: per-pixel S2 and S1 transformers over a year, fused to 128 dimensions |
| `tessera_inputs` | a decoded S2 series (+ S1) -> TESSERA's per-pixel inputs and validity |
| `frames`, `windows` | decoded frames as a model reads them; scenes larger than a window |
| `embed`, `embed_tessera` | `tec embed`: a `.tec` stream -> georeferenced embeddings (GeoTIFF) |
| `adapter`, `distill` | TerraFM from latents: the latent adapter and its training by distillation |
"""
