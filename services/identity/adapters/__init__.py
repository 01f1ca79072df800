"""Identity's edge: the outside vendors' clients (Tencent Cloud FaceID and SMS, the degree registry) and their
emulators, the SMS adapters, the identity verifiers, and the keys for personal data at rest (protection)."""
