# Registered by the container tests (filled in below).
