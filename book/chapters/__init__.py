"""One package per chapter, named as the registry (book.core.registry) names the chapter."""
