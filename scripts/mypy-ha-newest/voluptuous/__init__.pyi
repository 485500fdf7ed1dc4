# Home Assistant 2026 and later run with `voluptuous` aliased to probatio (its package
# __init__ calls probatio.compat.install_as_voluptuous), so the integration's schemas are
# type-checked as the objects they are there.
from probatio import *  # noqa: F403
