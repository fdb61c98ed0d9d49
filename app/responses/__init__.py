"""The Responses API's domain, no HTTP: a response's run (`run.py`: stored before its terminal
event goes out) and the stored responses (`stored.py`: by owner, chains, repair). Its wire
shapes (typed events, the response object) are `app/api/responses/`'s."""
