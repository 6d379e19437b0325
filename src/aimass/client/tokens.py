"""Tokens through the SDK (admin only): create, list and revoke."""

from __future__ import annotations

import builtins

from aimass.client._http import HttpSession
from aimass.entities.auth import Role, Token, TokenWithSecret


class Tokens:
    """API tokens (``client.tokens``); the secret is returned once, at creation."""

    def __init__(self, http: HttpSession) -> None:
        self._http = http

    def create(self, name: str, role: Role, project: str | None = None) -> TokenWithSecret:
        """Create a token with ``role``, limited to ``project`` or valid for all (None)."""
        body = {"name": name, "role": role, "project": project}
        answer = self._http.request("POST", "/api/v1/tokens", json_body=body)
        return TokenWithSecret.model_validate(answer.json())

    def list(self) -> builtins.list[Token]:
        """Every token, revoked ones included."""
        return [Token.model_validate(t) for t in self._http.get_all("/api/v1/tokens")]

    def revoke(self, id: int) -> Token:
        """Revoke a token; requests carrying it are refused from now on."""
        answer = self._http.request("DELETE", f"/api/v1/tokens/{int(id)}")
        return Token.model_validate(answer.json())
