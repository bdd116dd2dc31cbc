"""Training, paired-data generation, evaluation, metrics, figures and model cards of MRItoCT (never needed to synthesize)."""
