"""One HTTP answer of the simulator: status, JSON body, headers, and the route (operationId) it served."""

from __future__ import annotations


class Response:
    def __init__(self, status: int, body: dict | None = None, headers: dict[str, str] | None = None):
        self.status, self.body, self.headers = status, body, headers or {}
        self.route = ""
