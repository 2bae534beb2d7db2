//! An ephemeral PostgreSQL cluster (filled in by the PostgreSQL catalog work).
