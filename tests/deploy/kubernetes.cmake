# Registered by the kubernetes tests (filled in below).
