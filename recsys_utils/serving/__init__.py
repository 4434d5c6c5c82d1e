"""Serving: the REST API and the Gradio demo.
"""
