"""emotive.infer"""
