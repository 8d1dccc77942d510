"""`wavalign predict`: sampled, judged replies per prompt and the listening page that plays them."""
