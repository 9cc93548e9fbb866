"""linguamix: controlled multilingual post-training studies of LLMs.

design -> data -> train -> evaluate -> store -> analyze -> report, from one config.
"""
__version__ = "0.1.0"
