//! Unit tests over recorded Gemini traffic.
