"""The trainers: the peft + transformers Trainer path and the fused K-rate trainer."""
