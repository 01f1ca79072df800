"""Who is asking and what proves it: signed actors, staff roles checked again in every service, signatures, masking
of personal data, encryption at rest."""
