//! Prompt-injection rules (being written).
