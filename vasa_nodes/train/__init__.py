"""Training-data tools for the motion model: articulation targets from timed phonemes, a
synthetic multilingual corpus, and extraction of motion from real talking videos.

Nothing here is imported by the nodes.
"""
