"""model: the GPT, its data loader, pretraining, SFT, generation and checkpoints (plain Python + torch).

Entry points (see docs/CONTRACTS.md): `model.pretrain.pretrain`, `model.sft.sft`,
`model.generate.generate` (and `Generator` / `ChatSession` for interactive chat), and the CLIs
`python -m model.pretrain|sft|generate` (pretrain also under torchrun for data parallel).
Importing the package itself is cheap: torch loads only with the submodules.
"""
