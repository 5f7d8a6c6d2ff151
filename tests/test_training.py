"""The resumable-run protocol shared by the neural training loops (the loops' own resume tests are in
test_classify, test_translate and test_generate_train)."""

from __future__ import annotations

from pathlib import Path

import torch

from nlp_service.torch_utils import save_checkpoint
from nlp_service.training import ResumableRun


def _parts() -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.amp.GradScaler]:
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 2)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3), torch.amp.GradScaler("cuda", enabled=False)


def test_a_checkpoint_is_restored_with_its_progress(tmp_path: Path) -> None:
    model, optimizer, scaler = _parts()
    run = ResumableRun(tmp_path, model, optimizer, scaler, torch.device("cpu"))
    with torch.no_grad():
        model.weight.fill_(3.0)
    run.progress.done = 2
    run.progress.history.append({"epoch": 2, "loss": 0.5})
    assert run.improved(0.8) and not run.improved(0.7)
    run.progress.extra["running_loss"] = 0.25
    run.checkpoint()

    model2, optimizer2, scaler2 = _parts()
    resumed = ResumableRun(tmp_path, model2, optimizer2, scaler2, torch.device("cpu"))
    assert resumed.resumed_from == 2 and resumed.progress.history == [{"epoch": 2, "loss": 0.5}]
    assert resumed.progress.best_score == 0.8 and resumed.progress.best_at == 2
    assert resumed.progress.extra == {"running_loss": 0.25} and resumed.elapsed >= run.progress.seconds
    assert torch.equal(model2.weight, torch.full((2, 2), 3.0))
    resumed.finish()
    assert not tmp_path.exists()
    resumed.checkpoint()  # after finish: nothing is written again
    assert not tmp_path.exists()


def test_a_checkpoint_of_another_format_is_not_resumed_at_all(tmp_path: Path) -> None:
    """Nothing of it is put in place: not the weights, not the optimizer's learning rate."""
    old_model, old_optimizer, _ = _parts()
    with torch.no_grad():
        old_model.weight.fill_(7.0)
    old_optimizer.param_groups[0]["lr"] = 1.25e-4
    save_checkpoint(tmp_path / "checkpoint.pt", {"model": old_model.state_dict(),
                                                 "optimizer": old_optimizer.state_dict(), "epoch": 3})
    model, optimizer, scaler = _parts()
    fresh = model.weight.detach().clone()
    run = ResumableRun(tmp_path, model, optimizer, scaler, torch.device("cpu"))
    assert run.resumed_from == 0 and run.progress.history == []
    assert torch.equal(model.weight, fresh) and optimizer.param_groups[0]["lr"] == 1e-3


def test_without_a_folder_nothing_is_written(tmp_path: Path) -> None:
    model, optimizer, scaler = _parts()
    run = ResumableRun(None, model, optimizer, scaler, torch.device("cpu"))
    run.progress.done = 1
    run.checkpoint()
    run.finish()
    assert list(tmp_path.iterdir()) == []
