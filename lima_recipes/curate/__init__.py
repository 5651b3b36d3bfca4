"""LIMA-style curation: raw source dumps -> rules -> dedup/decontamination -> mixture -> dataset + card."""
