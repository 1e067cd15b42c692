"""Signed-JWT client credentials (RFC 7523 ``private_key_jwt``) and the access tokens they earn."""
