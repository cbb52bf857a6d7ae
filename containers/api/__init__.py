"""The REST API under /api/v1/ (Django REST Framework): every change goes through containers/services.py."""
