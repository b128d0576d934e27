"""file_search's retrieval: parsing, chunking, embedding, indexing and search of files."""
