"""Retrieval for file_search: parsing, chunking, embedding, indexing and search."""
