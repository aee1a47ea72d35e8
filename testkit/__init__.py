"""Dev-only helpers shared by tests, benchmarks and scripts.

A fake Slack Web API and Socket Mode server, Slack request signing, a private redis-server, tiny BERT models and
sample articles. Never imported by the product.
"""
