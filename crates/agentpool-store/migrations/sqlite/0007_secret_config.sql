-- An agent's `secret_config`, sealed (XChaCha20-Poly1305) by the master under the key in its
-- data directory: base64 of nonce and ciphertext, never the secret in clear. The store is the
-- only durable home of a secret, so a restore can hand it to the agent again.
ALTER TABLE agents ADD COLUMN secret_config TEXT;
