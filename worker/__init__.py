"""The worker: keeps the classifier loaded, runs queued jobs, fetches linked articles, replies in Slack."""
