from credence_common.persistence.migrations import run_env
from services.verification.models import Base

run_env(Base.metadata)
