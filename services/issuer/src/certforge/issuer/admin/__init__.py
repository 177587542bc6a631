"""`certforge-admin`: operator commands that work on the database and the key rings directly
(backup, restore, key-encryption key rotation). Part of the issuer's package because the issuer
is the one service allowed to hold the CA key ring."""
