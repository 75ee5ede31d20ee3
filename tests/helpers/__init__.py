"""What the tests share: running sockbox as a user would, loopback servers, profiles
from text. The fixtures built on them are in conftest.py."""
