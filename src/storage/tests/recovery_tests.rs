//! Recovery over segment images with seeded faults.
