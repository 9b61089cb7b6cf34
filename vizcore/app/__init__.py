"""Front doors: the command line, background jobs, start-up warm-up."""
