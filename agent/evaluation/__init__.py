"""The agent's evaluation set: requests written as people write them, with the facts each answer
must contain and the tool it should use. See README ("Evaluation") and ``runner``."""
