"""The tools that run and publish the book: the command line, the runner, the scoreboard and status
pages, the Colab install cell and the GPU validation."""
