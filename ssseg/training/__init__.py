"""Fine-tuning SAMV2 on one's own masks: mmengine's Runner around the model's training step."""
