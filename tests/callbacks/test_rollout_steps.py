from types import SimpleNamespace

from wavalign.callbacks.rollout_steps import rollouts_due


def _at(global_step: int, replies=("a reply",)):
    entry = SimpleNamespace(replies=list(replies))
    return SimpleNamespace(global_step=global_step), SimpleNamespace(last_entry=entry), entry


def test_due_on_multiples_of_n_once_per_step():
    trainer, module, entry = _at(global_step=5)  # the batch of optimiser step 4 just ended
    assert rollouts_due(trainer, module, every_n_steps=2, last_step=-1) == (4, entry)
    assert rollouts_due(trainer, module, every_n_steps=2, last_step=4) is None  # a second PPO epoch on it
    assert rollouts_due(trainer, module, every_n_steps=3, last_step=-1) is None


def test_not_due_before_the_first_step_or_without_replies():
    assert rollouts_due(*_at(global_step=0)[:2], every_n_steps=1, last_step=-1) is None
    assert rollouts_due(*_at(global_step=1, replies=())[:2], every_n_steps=1, last_step=-1) is None
    assert rollouts_due(SimpleNamespace(global_step=3), SimpleNamespace(), every_n_steps=1, last_step=-1) is None


def _trainer(global_step: int, logs_now: bool, callbacks=()):
    return SimpleNamespace(
        global_step=global_step,
        _logger_connector=SimpleNamespace(should_update_logs=logs_now),
        callbacks=list(callbacks),
    )


def test_rollouts_are_read_on_logged_steps_and_where_a_rollout_callback_is_due():
    from wavalign.callbacks.audio_log import RolloutAudioLogger
    from wavalign.callbacks.geometry import GradientGeometryCallback
    from wavalign.callbacks.rollout_steps import rollouts_read_now

    geometry = GradientGeometryCallback(every_n_steps=4)
    assert rollouts_read_now(None)  # a step run by hand
    assert rollouts_read_now(_trainer(3, logs_now=True))
    assert not rollouts_read_now(_trainer(3, logs_now=False, callbacks=[geometry, object()]))
    assert rollouts_read_now(_trainer(8, logs_now=False, callbacks=[geometry]))
    assert rollouts_read_now(_trainer(6, logs_now=False, callbacks=[RolloutAudioLogger(every_n_steps=3)]))
    assert not rollouts_read_now(_trainer(7, logs_now=False, callbacks=[RolloutAudioLogger(every_n_steps=3)]))
