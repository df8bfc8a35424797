//! TODO: placeholder, being written.
