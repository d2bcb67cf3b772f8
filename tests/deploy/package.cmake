# Registered by the package tests (filled in below).
