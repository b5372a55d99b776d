"""The console: server-rendered pages for the people in the loop, served by the API app at /console."""
